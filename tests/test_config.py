"""GatewayConfig: EG_* variables read as Enterprise Gateway reads them, bad values refused at startup."""

from __future__ import annotations

import logging
import os

import pytest
from traitlets.config import Config

from gateway.config import PACKAGED_KERNELSPECS, ConfigError, GatewayConfig, parse_list

SEED_DEPLOYMENT = {
    "EG_NAMESPACE": "enterprise-gateway",
    "EG_KERNEL_CLUSTER_ROLE": "kernel-controller",
    "EG_SHARED_NAMESPACE": "False",
    "EG_TUNNELING_ENABLED": "False",
    "EG_CULL_IDLE_TIMEOUT": "600",
    "EG_LOG_LEVEL": "DEBUG",
    "EG_KERNEL_LAUNCH_TIMEOUT": "60",
    "EG_KERNEL_WHITELIST": "['r_kubernetes','python_kubernetes','python_tf_kubernetes','scala_kubernetes',"
                           "'spark_r_kubernetes','spark_python_kubernetes','spark_scala_kubernetes']",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("EG_", "KG_")):
            monkeypatch.delenv(name)


def configured(monkeypatch: pytest.MonkeyPatch, **env: str) -> GatewayConfig:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return GatewayConfig()


def test_defaults_are_enterprise_gateways() -> None:
    config = GatewayConfig()
    assert (config.ip, config.port, config.base_url, config.response_port) == ("127.0.0.1", 8888, "/", 8877)
    assert config.namespace == "default" and config.kernel_cluster_role == "kernel-controller"
    assert config.shared_namespace is False and config.tunneling_enabled is False
    assert config.unauthorized_users == ["root"] and config.authorized_users == []
    assert config.allowed_kernels == [] and config.client_envs == [] and config.inherited_envs == []
    kernels = config.kernel_settings(environ={})
    assert kernels.max_kernels is None and kernels.max_kernels_per_user is None
    assert kernels.launch_timeout == 30.0 and kernels.restart_limit == 5
    assert kernels.cull_idle_timeout == 0 and kernels.cull_interval == 300 and not kernels.cull_busy
    provisioner = config.provisioner_settings(response_address="10.0.0.1:8877")
    assert provisioner.prohibited_uids == frozenset({0}) and provisioner.port_range is None
    assert provisioner.response_address == "10.0.0.1:8877"


def test_the_seed_deployment_is_understood(monkeypatch: pytest.MonkeyPatch) -> None:
    config = configured(monkeypatch, **SEED_DEPLOYMENT)
    assert config.namespace == "enterprise-gateway" and config.log_level == "DEBUG"
    assert config.kernel_settings().cull_idle_timeout == 600 and config.kernel_settings().launch_timeout == 60
    assert config.allowed_kernels[:2] == ["r_kubernetes", "python_kubernetes"] and len(config.allowed_kernels) == 7
    settings = config.provisioner_settings()
    assert settings.gateway_namespace == "enterprise-gateway" and settings.shared_namespace is False
    assert config.kernel_specs_arguments()["allowed"] == frozenset(config.allowed_kernels)


@pytest.mark.parametrize(("value", "expected"), [
    ("['a','b']", ["a", "b"]),
    ('["a", "b"]', ["a", "b"]),
    ("('a', 'b')", ["a", "b"]),
    ("a, b,,c ", ["a", "b", "c"]),
    ("python_kubernetes", ["python_kubernetes"]),
    ("[]", []),
    ("", []),
])
def test_lists_are_literals_or_comma_separated(value: str, expected: list[str]) -> None:
    assert parse_list("EG_KERNEL_WHITELIST", value) == expected


@pytest.mark.parametrize("value", [
    "[__import__('os').system('touch /tmp/pwned')]",
    "[1, 2]",
    "['a', ['b']]",
    "['unterminated",
    "[" * 500 + "]" * 500,
])
def test_list_literals_are_parsed_never_evaluated(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(ConfigError, match="EG_KERNEL_WHITELIST"):
        configured(monkeypatch, EG_KERNEL_WHITELIST=value)


def test_allowed_kernels_wins_over_the_whitelist(monkeypatch: pytest.MonkeyPatch) -> None:
    config = configured(monkeypatch, EG_ALLOWED_KERNELS="a,b", EG_KERNEL_WHITELIST="['c']")
    assert config.allowed_kernels == ["a", "b"]


@pytest.mark.parametrize(("value", "expected"), [
    ("True", True), ("true", True), ("TRUE", True), ("1", True), ("yes", True),
    ("False", False), ("false", False), ("fAlSe", False), ("0", False), ("no", False),
])
def test_booleans_are_read_in_any_case(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    assert configured(monkeypatch, EG_SHARED_NAMESPACE=value).shared_namespace is expected


@pytest.mark.parametrize(("name", "value"), [
    ("EG_SHARED_NAMESPACE", "sometimes"),
    ("EG_CULL_BUSY", "Tru"),
    ("EG_MIRROR_WORKING_DIRS", "maybe"),
    ("EG_MAX_KERNELS", "ten"),
    ("EG_MAX_KERNELS", "-2"),
    ("EG_MAX_KERNELS_PER_USER", "1.5"),
    ("EG_PORT", "http"),
    ("EG_PORT", "70000"),
    ("EG_RESPONSE_PORT", "-1"),
    ("EG_KERNEL_LAUNCH_TIMEOUT", "0"),
    ("EG_KERNEL_LAUNCH_TIMEOUT", "soon"),
    ("EG_KERNEL_LAUNCH_TIMEOUT", "nan"),
    ("EG_CULL_IDLE_TIMEOUT", "-5"),
    ("EG_CULL_INTERVAL", "0"),
    ("EG_LOG_LEVEL", "LOUD"),
    ("EG_PROHIBITED_UIDS", "0,root"),
    ("EG_PORT_RANGE", "40000-41000"),
    ("EG_RESTART_LIMIT", "-1"),
    ("EG_BUFFER_OFFLINE_MESSAGES", "later"),
])
def test_a_bad_value_stops_startup_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        configured(monkeypatch, **{name: value})


def test_a_huge_bad_value_is_not_repeated_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(monkeypatch, EG_MAX_KERNELS="x" * 10_000)
    assert "EG_MAX_KERNELS" in str(caught.value) and len(str(caught.value)) < 200


def test_tunneling_is_accepted_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.config"):
        config = configured(monkeypatch, EG_TUNNELING_ENABLED="True")
    assert config.tunneling_enabled is True
    assert any("tunneling is not supported" in r.getMessage() for r in caplog.records)


def test_no_warning_without_tunneling(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.config"):
        configured(monkeypatch, EG_TUNNELING_ENABLED="false")
    assert not caplog.records


def test_traitlets_config_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EG_MAX_KERNELS", "3")
    config = GatewayConfig(config=Config({"GatewayConfig": {"max_kernels": 7, "cull_busy": True}}))
    assert config.kernel_settings().max_kernels == 7 and config.kernel_settings().cull_busy is True


def test_traitlets_config_reaches_every_settings_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EG_PORT", "9000")
    monkeypatch.setenv("EG_NAMESPACE", "from-env")
    config = GatewayConfig(config=Config({"GatewayConfig": {
        "port": 8000, "response_port": 8001, "allowed_kernels": ["python_kubernetes"],
        "restart_limit": 2, "namespace": "from-config",
    }}))
    assert (config.port, config.response_port, config.allowed_kernels) == (8000, 8001, ["python_kubernetes"])
    assert config.kernel_settings().restart_limit == 2
    assert config.provisioner_settings().gateway_namespace == "from-config"


def test_the_packaged_kernelspecs_are_searched_first() -> None:
    paths = GatewayConfig().kernel_specs_arguments()["paths"]
    assert paths[0] == PACKAGED_KERNELSPECS
    assert (PACKAGED_KERNELSPECS / "python_kubernetes" / "kernel.json").is_file()


def test_limits_and_user_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    config = configured(monkeypatch, EG_MAX_KERNELS="10", EG_MAX_KERNELS_PER_USER="2",
                        EG_AUTHORIZED_USERS="alice,bob", EG_UNAUTHORIZED_USERS="root,mallory",
                        EG_PROHIBITED_UIDS="0,65534", EG_PORT_RANGE="40000..41000")
    kernels = config.kernel_settings()
    assert (kernels.max_kernels, kernels.max_kernels_per_user) == (10, 2)
    arguments = config.kernel_specs_arguments()
    assert arguments["authorized_users"] == {"alice", "bob"} and arguments["unauthorized_users"] == {"root", "mallory"}
    provisioner = config.provisioner_settings()
    assert provisioner.prohibited_uids == {0, 65534} and provisioner.port_range == "40000..41000"


def test_kernel_namespace_policy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    default = GatewayConfig().provisioner_settings()
    assert default.gateway_service_account == "enterprise-gateway-sa"
    assert default.kernel_namespace_selector == "app=enterprise-gateway,component=kernel"
    config = configured(monkeypatch, EG_SERVICE_ACCOUNT_NAME="gw", EG_KERNEL_NAMESPACE_SELECTOR="team=data,!frozen")
    settings = config.provisioner_settings()
    assert (settings.gateway_service_account, settings.kernel_namespace_selector) == ("gw", "team=data,!frozen")
    assert configured(monkeypatch, EG_KERNEL_NAMESPACE_SELECTOR="").provisioner_settings().kernel_namespace_selector == ""
    with pytest.raises(ConfigError, match="EG_KERNEL_NAMESPACE_SELECTOR"):
        configured(monkeypatch, EG_KERNEL_NAMESPACE_SELECTOR="team in (a,b)")


def test_inherited_envs_take_only_the_named_gateway_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    config = configured(monkeypatch, EG_INHERITED_ENVS="PATH,TZ,ABSENT", EG_CLIENT_ENVS="JUPYTER_TOKEN_X,*")
    settings = config.kernel_settings(environ={"PATH": "/bin", "TZ": "UTC", "SECRET": "s", "EG_AUTH_TOKEN": "t"})
    assert dict(settings.inherited_env) == {"PATH": "/bin", "TZ": "UTC"}
    assert settings.client_envs == {"JUPYTER_TOKEN_X", "*"}


def test_client_launch_timeout_cap_defaults_above_the_launch_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert configured(monkeypatch, EG_KERNEL_LAUNCH_TIMEOUT="900").kernel_settings().max_launch_timeout == 900
    with pytest.raises(ConfigError, match="EG_MAX_KERNEL_LAUNCH_TIMEOUT"):
        configured(monkeypatch, EG_KERNEL_LAUNCH_TIMEOUT="60", EG_MAX_KERNEL_LAUNCH_TIMEOUT="30")


def test_dropped_websockets_keep_their_sessions_unless_the_operator_says_no(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GatewayConfig().buffer_offline_messages is True  # Jupyter Server's default
    assert configured(monkeypatch, EG_BUFFER_OFFLINE_MESSAGES="False").buffer_offline_messages is False
