//! The Elixir journey: a device node running the example app, a code
//! change, and `hotswap-node deploy` with no flags from the project folder,
//! configured only by the `mix upload.hotswap` block in config/config.exs.

mod common;

use common::{copy_dir, elixir_ebin, mix_compile, unique, ErlNode, NodeSpec};
use std::process::Command;

#[test]
fn deploy_with_no_flags_from_a_mix_project_reads_config_exs() {
    let root = tempfile::tempdir().expect("tmp");
    let dev = root.path().join("example");
    copy_dir(&common::fixture("example"), &dev);
    mix_compile(&dev);
    // The device runs its own copy of the build, like firmware.
    let device = root.path().join("device");
    copy_dir(&dev, &device);
    std::fs::create_dir_all(device.join("_build")).expect("mkdir");
    copy_dir(&dev.join("_build"), &device.join("_build"));
    let lib = device.join("_build/dev/lib/example");
    let mut node = ErlNode::start(
        NodeSpec::new("exdevice")
            .code_path(&elixir_ebin("elixir"))
            .code_path(&elixir_ebin("logger"))
            .code_path(&lib.join("consolidated"))
            .code_path(&lib.join("ebin")),
    );
    let started = node.eval("application:ensure_all_started(example).");
    assert!(started.starts_with("{ok,"), "{started}");
    assert_eq!(node.eval("'Elixir.Example':hello()."), "world");
    assert_eq!(node.eval("'Elixir.Example.Counter':increment()."), "1");

    // Point the seed's config block at the node, as a user would.
    std::fs::write(
        dev.join("config/config.exs"),
        format!(
            "import Config\n\n# what `mix upload.hotswap` reads\nconfig :mix_tasks_upload_hotswap,\n  app_name: :example,\n  nodes: [:\"{}\"],\n  cookie: \"{}\"\n",
            node.name, node.cookie
        ),
    )
    .expect("config");
    let source = dev.join("lib/example.ex");
    let text = std::fs::read_to_string(&source).expect("read");
    std::fs::write(&source, text.replace(":world", ":\"new world\"")).expect("edit");

    let out = deploy_with_no_flags(&dev, root.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Building with `mix compile`"), "{stdout}");
    assert!(
        stdout.contains(&format!("Connected to {}", node.name)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Deployed Elixir.Example to {} (changed)",
            node.name
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&node.cookie) && !stderr.contains(&node.cookie),
        "cookie {} leaked:\n{stdout}\n{stderr}",
        node.cookie
    );
    assert_eq!(node.eval("'Elixir.Example':hello()."), "'new world'");
    // The counter process kept its state through the deploy.
    assert_eq!(node.eval("'Elixir.Example.Counter':increment()."), "2");

    // Its state goes from an integer to a struct with one more field: the
    // next plain deploy migrates the same process through code_change.
    let pid = node.eval("whereis('Elixir.Example.Counter').");
    std::fs::write(dev.join("lib/example/counter.ex"), COUNTER_AS_STRUCT).expect("edit");
    let out = deploy_with_no_flags(&dev, root.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Migrated 1 process of `Elixir.Example.Counter`"),
        "{stdout}"
    );
    assert_eq!(node.eval("whereis('Elixir.Example.Counter')."), pid);
    assert_eq!(node.eval("'Elixir.Example.Counter':increment()."), "12");
    let shape = "case sys:get_state('Elixir.Example.Counter') of \
        #{'__struct__' := 'Elixir.Example.Counter', count := 12, step := 10} -> struct; \
        Other -> Other end.";
    assert_eq!(node.eval(shape), "struct");
}

/// `hotswap-node deploy` with no flags in the project `dev`, `home` its
/// HOME, no HOTSWAP_* or MIX_TARGET from the test's environment.
fn deploy_with_no_flags(dev: &std::path::Path, home: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hotswap-node"))
        .args(["deploy", "--name", &unique("hs")])
        .current_dir(dev)
        .env("HOME", home)
        .env("PATH", common::tool_path())
        .env_remove("HOTSWAP_NODES")
        .env_remove("HOTSWAP_COOKIE")
        .env_remove("MIX_TARGET")
        .output()
        .expect("binary runs")
}

/// The example's counter with its state a struct of two fields, and the
/// code_change that makes one of the integer it was.
const COUNTER_AS_STRUCT: &str = r#"defmodule Example.Counter do
  use GenServer
  defstruct count: 0, step: 10

  def start_link(opts \\ []),
    do: GenServer.start_link(__MODULE__, Keyword.get(opts, :initial, 0), name: __MODULE__)

  def increment, do: GenServer.call(__MODULE__, :increment)
  def value, do: GenServer.call(__MODULE__, :value)

  @impl true
  def init(initial), do: {:ok, %__MODULE__{count: initial}}

  @impl true
  def handle_call(:increment, _from, %__MODULE__{count: n, step: d} = s),
    do: {:reply, n + d, %{s | count: n + d}}

  def handle_call(:value, _from, %__MODULE__{count: n} = s), do: {:reply, n, s}

  @impl true
  def code_change(_old, n, _extra) when is_integer(n), do: {:ok, %__MODULE__{count: n}}
end
"#;

#[test]
fn a_failed_build_stops_before_connecting() {
    let root = tempfile::tempdir().expect("tmp");
    let dev = root.path().join("example");
    copy_dir(&common::fixture("example"), &dev);
    std::fs::write(
        dev.join("lib/broken.ex"),
        "defmodule Broken do\n  def f, do: \nend\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_hotswap-node"))
        .args([
            "deploy",
            "--name",
            &unique("hs"),
            "--cookie",
            "c",
            "--node",
            "nobody@nowhere",
        ])
        .current_dir(&dev)
        .env("HOME", root.path())
        .env("PATH", common::tool_path())
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the build (`mix compile`) failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("nowhere"), "{stderr}");
}
