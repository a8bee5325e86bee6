"""The record locator: a clinician's node finds a patient's records at other hospitals.

- :mod:`~node.locator.asker` — node A: probe tokens, the coordinator's lookup, sealed requests, answers;
- :mod:`~node.locator.responder` — node B: takes requests from the relay, re-checks the demographics and
  the patient's consent, releases a year of labs and diagnoses or refuses;
- :mod:`~node.locator.release` — what B releases (a FHIR searchset Bundle);
- :mod:`~node.locator.certificates` — peers' keys, checked against the network-admin key;
- :mod:`~node.locator.relay` — the relay calls (send, poll) over the signed client;
- :mod:`~node.locator.audit` — ``locator_audit``, written on both sides for every exchange;
- :mod:`~node.locator.context` — everything the above need, built from the node's settings.
"""
