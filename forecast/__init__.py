"""Demand forecasting and reorder rules: pure functions over plain data, no database and no Temporal.

`series` turns order lines into daily demand per SKU, `classify` tells smooth from intermittent
demand (ADI / CV²), `engine` picks a model per SKU by a rolling backtest and forecasts the next
28 days with intervals, `reorder` turns a forecast and the stock into a purchase suggestion.
"""
