from tests.jack import jack_server  # noqa: F401  (session fixture for @pytest.mark.audio tests)
