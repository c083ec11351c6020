"""The platform's rules and data. Imports no web, GraphQL or queue framework (tests check it)."""
