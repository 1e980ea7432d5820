"""Forecasts of the future: the forecast stage, the forecast maths, `tsforecast predict`."""
