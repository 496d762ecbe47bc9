"""PostgreSQL specifics: the asyncpg group-commit writer and the LISTEN/NOTIFY change hint.

asyncpg is an optional dependency (the ``postgres`` extra); nothing here imports it
until a PostgreSQL database is opened.
"""
