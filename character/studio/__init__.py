"""The Studio: a local web app over runs, data, checkpoints, chat and constitutions (`character studio`).

`app.create_app()` builds the Starlette app; `views_*` hold the pages and actions; `jsonl_index` pages
and searches large JSONL files; `chat_engine` streams replies from a checkpoint. Run data is read
through `character.runs`, the reader `runs show` and the report share.
"""
