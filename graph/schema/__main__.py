from graph.schema import schema

print(schema.as_str())
