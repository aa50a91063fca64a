"""Weights tooling: replay logged requests per profile, check and diff weights files, tune profiles.

Everything here ranks with the server's own code (`service.profiles`) over the bundle's served
heads (`LoadedBundle.predict`), so an offline number describes what production serves.
"""
