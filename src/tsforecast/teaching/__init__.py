"""The RNN-vs-LSTM teaching code: a gate-by-gate LSTM cell and `tsforecast explain`."""
