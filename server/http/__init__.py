"""The HTTP edge: the error middleware, token -> reader, the admin API,
recordings, review and the pages.
"""
