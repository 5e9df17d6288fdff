"""Teacher targets held in memory under a budget, or read from the shards past it."""

from __future__ import annotations

import pytest
import torch

from pipeline.cache import TeacherCache
from pipeline.data.manifest import Manifest
from pipeline.errors import CacheError
from pipeline.student.targets import TeacherTargets


@pytest.mark.parametrize("source", ["rollout", "layer:1", "rollout:2"])
def test_in_memory_and_streamed_targets_give_identical_batches(views_data, views_cache, source):
    ids = [clip.id for clip in Manifest.load(views_data).split("train")]
    with TeacherCache(views_cache) as cache:
        memory = TeacherTargets(cache, source, ids, views=3)
        streamed = TeacherTargets(cache, source, ids, views=3, memory_mb=0)
        assert (memory.mode, streamed.mode) == ("memory", "streamed")
        generator = torch.Generator().manual_seed(0)
        for _ in range(4):
            picked = torch.randperm(len(ids), generator=generator)[:4].tolist()
            views = torch.randint(3, (4,), generator=generator).tolist()
            batch = [ids[i] for i in picked]
            for held, read in zip(memory.batch(batch, views), streamed.batch(batch, views)):
                assert torch.equal(held, read)
        # and what is held is the cache's own, not the same mistake made twice
        vectors, logits = memory.batch(ids[:1], [2])
        assert torch.equal(vectors[0], torch.from_numpy(cache.vector(ids[0], source, 2)))
        assert torch.equal(logits[0], torch.from_numpy(cache.logits(ids[0], 2)))


def test_the_budget_decides_what_is_held(views_data, views_cache):
    ids = [clip.id for clip in Manifest.load(views_data).split("train")]
    with TeacherCache(views_cache) as cache:
        size = len(ids) * 3 * (cache.resolution + len(cache.classes)) * 4
        assert TeacherTargets(cache, "rollout", ids, 3, memory_mb=size / 2**20).in_memory
        assert not TeacherTargets(cache, "rollout", ids, 3, memory_mb=(size - 1) / 2**20).in_memory


def test_a_cache_without_views_serves_view_zero(synth_data, teacher_cache):
    ids = [clip.id for clip in Manifest.load(synth_data).split("train")][:5]
    with TeacherCache(teacher_cache) as cache:
        vectors, logits = TeacherTargets(cache, "layer:2", ids).batch(ids, [0] * 5)
        assert vectors.shape == (5, cache.resolution) and logits.shape == (5, len(cache.classes))
        assert torch.equal(vectors[3], torch.from_numpy(cache.vector(ids[3], "layer:2")))


def test_more_views_or_a_layer_the_cache_lacks_is_refused(views_data, views_cache):
    ids = [clip.id for clip in Manifest.load(views_data).split("train")]
    with TeacherCache(views_cache) as cache:
        with pytest.raises(CacheError, match="holds 3 view"):
            TeacherTargets(cache, "rollout", ids, views=4)
        with pytest.raises(CacheError, match="teacher layer 9"):
            TeacherTargets(cache, "layer:9", ids)
        with pytest.raises(CacheError, match="not in this cache"):
            TeacherTargets(cache, "rollout", ["no-such-clip"])
