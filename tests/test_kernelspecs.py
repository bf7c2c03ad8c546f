"""Kernelspecs as clients see them: the allow-list, user rules, resources that stay in their folder."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.filewatch import FolderWatch
from gateway.kernels.errors import KernelError, UnknownKernelSpec, UserNotAuthorized
from gateway.kernels.specs import KernelSpecs

K8S = "enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy"


def make_spec(base: Path, name: str, *, config: dict[str, Any] | None = None, proxy: str = K8S,
              logo: bool = True, **extra: Any) -> Path:
    folder = base / name
    (folder / "scripts").mkdir(parents=True)
    kernel_json = {"display_name": name, "language": "python", "argv": [],
                   "metadata": {"process_proxy": {"class_name": proxy, "config": config or {}}}, **extra}
    (folder / "kernel.json").write_text(json.dumps(kernel_json))
    (folder / "scripts" / "kernel-pod.yaml").write_text("kind: Pod\n")
    if logo:
        (folder / "logo-64x64.png").write_bytes(b"\x89PNG\r\n")
    return folder


def specs(paths: list[Path], **kwargs: Any) -> KernelSpecs:
    options: dict[str, Any] = {"allowed": None, "default_name": None, "authorized_users": frozenset(),
                               "unauthorized_users": frozenset({"root"})}
    options.update(kwargs)
    return KernelSpecs(paths, **options)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "kernels"
    root.mkdir()
    make_spec(root, "python_kubernetes", config={"image_name": "elyra/kernel-py:3.2"}, env={"A": "1"},
              interrupt_mode="message")
    make_spec(root, "r_kubernetes")
    make_spec(root, "private", config={"authorized_users": "alice, bob", "unauthorized_users": ["carol"]})
    make_spec(root, "local_python", proxy="enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy")
    (root / "broken").mkdir()
    (root / "broken" / "kernel.json").write_text("{not json")
    return root


def test_models_have_jupyter_servers_shape(base: Path) -> None:
    model = specs([base]).get("python_kubernetes")
    assert model["name"] == "python_kubernetes"
    assert model["spec"]["metadata"]["process_proxy"]["config"]["image_name"] == "elyra/kernel-py:3.2"
    assert model["resources"] == {"logo-64x64": "/kernelspecs/python_kubernetes/logo-64x64.png"}
    prefixed = specs([base]).get("python_kubernetes", base_url="/gw/")
    assert prefixed["resources"]["logo-64x64"] == "/gw/kernelspecs/python_kubernetes/logo-64x64.png"


def test_only_readable_kubernetes_specs_are_offered(base: Path) -> None:
    assert sorted(specs([base]).all()) == ["private", "python_kubernetes", "r_kubernetes"]
    for name in ("local_python", "broken", "missing", "../kernels/r_kubernetes"):
        with pytest.raises(UnknownKernelSpec):
            specs([base]).get(name)


async def test_the_first_path_wins(base: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    make_spec(other, "r_kubernetes", config={"image_name": "mine/r:1"})
    assert (await specs([other, base]).choose("r_kubernetes")).info.image == "mine/r:1"
    assert (await specs([base, other]).choose("r_kubernetes")).info.image == "elyra/kernel-py:dev"


async def test_allow_list_hides_other_specs_as_not_found(base: Path) -> None:
    offered = specs([base], allowed=frozenset({"r_kubernetes", "not_installed"}))
    assert list(offered.all()) == ["r_kubernetes"]
    with pytest.raises(UnknownKernelSpec) as caught:
        offered.get("python_kubernetes")
    assert caught.value.status == 404
    with pytest.raises(UnknownKernelSpec):
        await offered.choose("python_kubernetes")


def test_default_name(base: Path) -> None:
    assert specs([base]).default_name == "python_kubernetes"
    assert specs([base], default_name="r_kubernetes").default_name == "r_kubernetes"
    assert specs([base], default_name="gone").default_name == "python_kubernetes"
    assert specs([base], allowed=frozenset({"r_kubernetes"}), default_name="python_kubernetes").default_name == "r_kubernetes"
    assert specs([]).default_name == ""


@pytest.fixture
async def watch() -> AsyncIterator[FolderWatch]:
    folder_watch = FolderWatch()
    yield folder_watch
    await folder_watch.stop()


@pytest.mark.parametrize("kept", [False, True], ids=["read-each-start", "kept-between-starts"])
async def test_a_start_chooses_what_the_listing_offers(base: Path, tmp_path: Path, watch: FolderWatch,
                                                       kept: bool) -> None:
    """A start looks its kernelspec up by name, without listing: the same folder, default and refusals as the listing
    (asked twice: what a start keeps of its read answers the second)."""
    first = tmp_path / "first"
    (first / "r_kubernetes").mkdir(parents=True)  # no kernel.json here: the next path's r_kubernetes is offered
    make_spec(first, "private", config={"image_name": "mine/private:1"})
    options: dict[str, Any] = {"watch": watch} if kept else {}
    for offered in (specs([first, base], **options),
                    specs([first, base], allowed=frozenset({"r_kubernetes", "private"}), **options),
                    specs([first, base], default_name="r_kubernetes", **options),
                    specs([first, base], default_name="gone", **options),
                    specs([first], default_name="gone", **options)) * 2:
        listed = offered.all()
        assert (await offered.choose(None)).name == offered.default_name
        for name in [*listed, "python_kubernetes", "local_python", "broken", "missing", ".", "..",
                     "../kernels/r_kubernetes", "scripts"]:
            if name in listed:
                chosen = await offered.choose(name)
                assert chosen.info.resource_dir == offered._folders()[name]
            else:
                with pytest.raises(UnknownKernelSpec):
                    await offered.choose(name)
    with pytest.raises(UnknownKernelSpec):
        await specs([tmp_path / "empty"], **options).choose(None)


async def test_a_start_sees_every_change_to_the_folders_since_the_last(base: Path, tmp_path: Path,
                                                                      watch: FolderWatch) -> None:
    """What a start keeps of its kernelspec's read is read again after any change that could alter it."""
    first = tmp_path / "first"
    offered = specs([first, base], watch=watch)
    assert (await offered.choose("r_kubernetes")).info.image == "elyra/kernel-py:dev"
    make_spec(first, "r_kubernetes", config={"image_name": "mine/r:1"})  # an earlier path that did not exist
    assert (await offered.choose("r_kubernetes")).info.image == "mine/r:1"
    kernel_json = first / "r_kubernetes" / "kernel.json"
    kernel_json.write_text(kernel_json.read_text().replace("mine/r:1", "mine/r:2"))
    assert (await offered.choose("r_kubernetes")).info.image == "mine/r:2"
    kernel_json.unlink()  # the folder stays, without its kernel.json: the next path's is offered again
    assert (await offered.choose("r_kubernetes")).info.image == "elyra/kernel-py:dev"

    assert (await offered.choose(None)).name == "python_kubernetes"
    make_spec(first, "python_kubernetes", config={"image_name": "mine/py:1"})
    assert (await offered.choose(None)).info.image == "mine/py:1"


async def test_a_kernelspec_folder_switched_by_its_link_is_read_again(tmp_path: Path, watch: FolderWatch) -> None:
    """A kernelspec folder that is a link, switched to another version by renaming a new link over it (as git-sync
    switches a checkout): the change is to the folder holding the link, not to the folder it led to."""
    make_spec(tmp_path / "v1", "r_kubernetes", config={"image_name": "mine/r:v1"})
    make_spec(tmp_path / "v2", "r_kubernetes", config={"image_name": "mine/r:v2"})
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "r_kubernetes").symlink_to(tmp_path / "v1" / "r_kubernetes")
    offered = specs([kernels], watch=watch)
    assert (await offered.choose("r_kubernetes")).info.image == "mine/r:v1"
    (kernels / "r_kubernetes.new").symlink_to(tmp_path / "v2" / "r_kubernetes")
    os.replace(kernels / "r_kubernetes.new", kernels / "r_kubernetes")
    assert (await offered.choose("r_kubernetes")).info.image == "mine/r:v2"


async def test_a_default_that_is_the_first_found_is_looked_up_at_each_start(tmp_path: Path,
                                                                            watch: FolderWatch) -> None:
    """With neither the configured default nor python_kubernetes offered, the default is the first name found: a
    folder that gains its kernel.json, wherever it is, may change it."""
    make_spec(tmp_path, "r_kubernetes")
    offered = specs([tmp_path], default_name="gone", watch=watch)
    assert (await offered.choose(None)).name == "r_kubernetes"
    folder = make_spec(tmp_path, "a_kubernetes")
    kernel_json = (folder / "kernel.json").read_text()
    (folder / "kernel.json").unlink()
    assert (await offered.choose(None)).name == "r_kubernetes"
    (folder / "kernel.json").write_text(kernel_json)
    assert (await offered.choose(None)).name == "a_kubernetes"


async def test_per_spec_users(base: Path) -> None:
    offered = specs([base])
    assert "private" in offered.all("alice") and "private" not in offered.all("dave")
    assert "private" not in offered.all("carol")
    (await offered.choose("private")).check_user("bob")
    with pytest.raises(UserNotAuthorized) as caught:
        offered.get("private", user="dave")
    assert caught.value.status == 403 and "dave" in caught.value.message


async def test_global_users(base: Path) -> None:
    offered = specs([base], authorized_users=frozenset({"alice", "dave"}), unauthorized_users=frozenset({"root", "bob"}))
    assert sorted(offered.all("dave")) == ["python_kubernetes", "r_kubernetes"]  # private lists its own users
    assert sorted(offered.all("alice")) == ["private", "python_kubernetes", "r_kubernetes"]
    assert offered.all("bob") == {}  # globally refused, even where the kernelspec authorizes bob
    assert offered.all("root") == {}
    r_kubernetes = await offered.choose("r_kubernetes")
    with pytest.raises(UserNotAuthorized):
        r_kubernetes.check_user("erin")
    assert sorted(offered.all()) == ["private", "python_kubernetes", "r_kubernetes"]


async def test_info_for_the_provisioner(base: Path) -> None:
    offered = specs([base], default_image="kernelgate/kernel-py:1")
    info = (await offered.choose("python_kubernetes")).info
    assert (info.image, info.interrupt_mode, dict(info.env)) == ("elyra/kernel-py:3.2", "message", {"A": "1"})
    assert info.template_path == base / "python_kubernetes" / "scripts" / "kernel-pod.yaml"
    assert (await offered.choose("r_kubernetes")).info.image == "kernelgate/kernel-py:1"
    assert (await offered.choose(None)).name == "python_kubernetes"
    with pytest.raises(UnknownKernelSpec):
        await specs([]).choose(None)


async def test_a_kernelspec_edited_on_disk_is_seen_by_the_next_start(base: Path) -> None:
    offered = specs([base])
    assert (await offered.choose("r_kubernetes")).info.env == {}
    kernel_json_path = base / "r_kubernetes" / "kernel.json"
    kernel_json = json.loads(kernel_json_path.read_text())
    kernel_json["env"] = {"B": "2"}
    kernel_json["metadata"]["process_proxy"]["config"]["authorized_users"] = ["alice"]
    kernel_json_path.write_text(json.dumps(kernel_json))
    chosen = await offered.choose("r_kubernetes")
    assert dict(chosen.info.env) == {"B": "2"}
    chosen.check_user("alice")
    with pytest.raises(UserNotAuthorized):
        chosen.check_user("bob")


def test_resources_are_served_from_the_spec_folder(base: Path) -> None:
    path = specs([base]).resource_path("python_kubernetes", "logo-64x64.png")
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("resource", [
    "../r_kubernetes/kernel.json", "..", "../../etc/passwd", "/etc/passwd", "scripts/../../r_kubernetes/kernel.json",
    "..\\r_kubernetes\\kernel.json", "scripts", "", "missing.png", "logo-64x64.png\0.txt", "./kernel.json",
])
def test_resource_paths_never_leave_the_folder(base: Path, resource: str) -> None:
    with pytest.raises(KernelError) as caught:
        specs([base]).resource_path("python_kubernetes", resource)
    assert caught.value.status == 404


def test_a_symlink_out_of_the_folder_is_refused(base: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    (base / "r_kubernetes" / "logo-svg.svg").symlink_to(secret)
    with pytest.raises(KernelError):
        specs([base]).resource_path("r_kubernetes", "logo-svg.svg")


def test_the_shipped_kernelspec_is_offered() -> None:
    shipped = Path(__file__).resolve().parent.parent / "kernelspecs"
    offered = specs([shipped])
    assert "python_kubernetes" in offered.all()
    assert offered.resource_path("python_kubernetes", "logo-64x64.png").is_file()
