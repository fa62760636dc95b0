"""Shared fixtures: the digits feature network is trained once (cached under data/features/)."""

import pytest


@pytest.fixture(scope="session")
def digits_net():
    from mcollapse import features

    return features.feature_net("digits", progress=False)


@pytest.fixture(scope="session")
def digits_reference(digits_net):
    from mcollapse import metrics

    return metrics.reference("digits", net=digits_net)
