"""Stage one: the transformer teacher, its attention capture and reduction, and the
extraction of one batch of clips into a cache shard. Stage two never imports this package
(it pulls in ``transformers``); it reads what stage one wrote through ``pipeline.cache``."""
