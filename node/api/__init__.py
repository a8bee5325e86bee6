"""The node's HTTP API: FHIR R4 under /fhir for the hospital's own users, and /healthz."""
