"""Tools over recorded streams: training, evaluation, backtests, benchmarks, the demo."""
