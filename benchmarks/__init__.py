"""Benchmarks: the app under gunicorn against a bare Flask app, at two data sizes.

``python -m benchmarks.run`` (see README, "Performance") builds the data with
``benchmarks.build``, serves both apps and drives them with wrk.
"""
