"""The e-consulate: citizens, stays abroad, service requests, documents, appointments, messages."""
