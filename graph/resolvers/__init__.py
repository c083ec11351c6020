"""Thin resolvers: build the call, call one domain service, hand the result back."""
