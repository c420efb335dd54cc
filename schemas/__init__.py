"""Wire formats: events, complaints, federation messages, and the OpenAPI document."""
