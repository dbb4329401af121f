import pytest

from fastinception import InceptionSpec


def test_slices_cover_the_output_in_order():
    spec = InceptionSpec.from_args(192, 64, (96, 128), (16, 32), 32)
    assert spec.out_channels == 256
    assert spec.stem_channels == 64 + 96 + 16
    assert [spec.p1, spec.p2, spec.p3, spec.p4] == [slice(0, 64), slice(64, 192), slice(192, 224), slice(224, 256)]
    assert spec.args() == (192, 64, (96, 128), (16, 32), 32)


def test_spec_is_immutable():
    spec = InceptionSpec(1, 2, 3, 4, 5, 6, 7)
    with pytest.raises(AttributeError):
        spec.c1 = 3


@pytest.mark.parametrize(
    "kwargs, field, value",
    [
        (dict(c1=0), "c1", "0"),
        (dict(c2b=-3), "c2b", "-3"),
        (dict(in_channels=2.5), "in_channels", "2.5"),
        (dict(c4=True), "c4", "True"),
        (dict(k2=4), "k2", "4"),
        (dict(k3=0), "k3", "0"),
    ],
)
def test_bad_field_is_named(kwargs, field, value):
    base = dict(in_channels=1, c1=2, c2a=3, c2b=4, c3a=5, c3b=6, c4=7)
    with pytest.raises(ValueError, match=rf"{field} .*{value}"):
        InceptionSpec(**{**base, **kwargs})


def test_bad_pair_is_named():
    with pytest.raises(ValueError, match="c2 must be a .*pair"):
        InceptionSpec.from_args(8, 4, 5, (2, 3), 1)
