"""s4.learning_phase: inference by default, a context manager per thread, part of every
compiled function's cache key."""
import threading

import pytest

import s4tf_py as s4


def test_inference_is_the_default_and_the_context_restores_it():
    assert s4.learning_phase() == "inference" and not s4.nn.is_training()
    with s4.learning_phase("training") as phase:
        assert phase == "training" and s4.nn.is_training()
        with s4.learning_phase("inference"):
            assert s4.learning_phase() == "inference"
        assert s4.learning_phase() == "training"
    assert s4.learning_phase() == "inference"


def test_unknown_phase_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match="'training' or 'inference'"):
        s4.learning_phase("train")


def test_the_phase_is_per_thread():
    seen = []
    with s4.learning_phase("training"):
        t = threading.Thread(target=lambda: seen.append(s4.learning_phase()))
        t.start()
        t.join()
    assert seen == ["inference"]


def test_a_compiled_function_traces_once_per_phase():
    f = s4.compile(lambda x: x * (2.0 if s4.nn.is_training() else 3.0))
    x = s4.ones((2,))
    assert f(x).tolist() == [3.0, 3.0]
    with s4.learning_phase("training"):
        assert f(x).tolist() == [2.0, 2.0]
        assert f(x).tolist() == [2.0, 2.0]
    assert f(x).tolist() == [3.0, 3.0]
    assert f.traces == 2
