"""Background work: the queue facade (arq on Redis, or in-process) and the worker functions."""
