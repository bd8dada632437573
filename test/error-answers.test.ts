import { errorAnswerCases } from './error-answers.cases';

describe('Express 5', () => errorAnswerCases());
