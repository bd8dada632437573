// Every `express` import (the library's included) is Express 4 here.
jest.mock('express', () => jest.requireActual('express4'));

import { errorAnswerCases } from './error-answers.cases';

test('express is Express 4 in this file', () => {
  // Express 4 still has the body parsers' predecessor API `express.query`; Express 5 removed it.
  expect(typeof (jest.requireMock('express') as { query?: unknown }).query).toBe('function');
});

describe('Express 4', () => errorAnswerCases());
