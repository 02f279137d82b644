"""nerveX's data-queue snippet (tutorial, 搭建数据队列) runs as written."""

from __future__ import annotations

from lightning_rl import keys


def test_nervex_data_queue_snippet_runs_verbatim():
    from lightning_rl.data import PrioritizedBuffer

    buffer_ = PrioritizedBuffer(maxlen=10000)

    # add 10 data
    for _ in range(10):
        buffer_.append({'data': 'placeholder'})  # fmt: skip
    data = buffer_.sample(4)  # sample 4 data

    assert len(buffer_) == 10 and buffer_.capacity == 10000
    assert isinstance(data, list) and len(data) == 4
    for item in data:
        assert item["data"] == "placeholder"
        assert isinstance(item[keys.INDEX], int) and 0 <= item[keys.INDEX] < 10
        assert isinstance(item[keys.WEIGHT], float) and 0.0 < item[keys.WEIGHT] <= 1.0
    # the sampled entries feed priorities back as in nerveX's learner loop
    buffer_.update_priority([item[keys.INDEX] for item in data], [0.5, 1.0, 2.0, 4.0])
    assert buffer_.stats()["priority_max"] > 1.0
