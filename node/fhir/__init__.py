"""FHIR R4: resource validation, search parameters, bundles and the data-quality summary."""
