"""SQL-on-FHIR v2 views on the node: the analysis variables that federated jobs may name.

A ViewDefinition (HL7 SQL on FHIR v2) turns resources of one type into rows of named, typed columns.
The node parses and validates views (:mod:`.definition`), evaluates them with its own FHIRPath engine
(:mod:`.fhirpath`, :mod:`.evaluate`), ships a library of standard views with declared column types and
bounds (:mod:`.library`), and keeps their rows in step with every write (:mod:`.materialise`).
Federated jobs name views and columns, never raw resources.
"""
