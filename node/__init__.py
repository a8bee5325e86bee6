"""The hospital appliance: FHIR store and API, federated job handlers, policy and audit."""
