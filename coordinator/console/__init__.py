"""The coordinator's console: server-rendered pages for people, live through one small script.

``routes`` serves the pages and their JSON under ``/console``; ``sessions`` keeps who is logged in
(in memory, by a random session id in a cookie, never the API token); ``views`` turns store records
into the rows both the pages and the JSON show; ``pages`` renders them as escaped HTML.
"""
