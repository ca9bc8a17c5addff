"""The lowest layer: configuration, the session clock, task ownership, signed
tokens, roles, errors and rate limits. Imports nothing else of server/.
"""
