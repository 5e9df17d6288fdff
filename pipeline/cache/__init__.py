"""Teacher caches: what stage one computes once and stage two reads many times.

A cache is a folder ``<cache_root>/<key>/`` named by a hash of everything its content
depends on (``key``), holding HDF5 shards ``shard-00000.h5, ...`` (``shard``, ``writer``)
and ``index.json`` (``index``), written last: a folder without an index is an unfinished
extraction, never a cache. ``reader`` serves it by clip id, ``lock`` keeps two writers of
one key apart, ``verify`` reads every byte, ``maintenance`` lists caches and removes what
killed writers left. The names below are the package's public interface.
"""

from pipeline.cache.index import INDEX_FILE, CacheIndex, ShardInfo
from pipeline.cache.key import SCHEMA_VERSION, cache_key, shard_name
from pipeline.cache.lock import LOCK_FILE, cache_lock
from pipeline.cache.maintenance import collect_garbage, list_caches
from pipeline.cache.reader import (
    SOURCE_FORMS,
    TeacherCache,
    TeacherRecord,
    parse_attention_source,
)
from pipeline.cache.shard import SUM_TOLERANCE
from pipeline.cache.verify import verify_cache
from pipeline.cache.writer import read_shard_attrs, read_shard_ids, write_shard

__all__ = [
    "INDEX_FILE",
    "LOCK_FILE",
    "SCHEMA_VERSION",
    "SOURCE_FORMS",
    "SUM_TOLERANCE",
    "CacheIndex",
    "ShardInfo",
    "TeacherCache",
    "TeacherRecord",
    "cache_key",
    "cache_lock",
    "collect_garbage",
    "list_caches",
    "parse_attention_source",
    "read_shard_attrs",
    "read_shard_ids",
    "shard_name",
    "verify_cache",
    "write_shard",
]
