"""mtlab: the tools that study the ``mt`` library (benchmarks, the LSTM-vs-Transformer comparison, the soak).

They use only the library's public interface (``mt.api``); nothing in ``mt`` imports from here.
"""
