defmodule HotswapNode.RunTest do
  use ExUnit.Case, async: false
  import ExUnit.CaptureIO
  import ExUnit.CaptureLog

  setup do
    dir = Path.join(System.tmp_dir!(), "hotswap_node_run_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    bin = Path.join(dir, "hotswap-node")

    File.write!(bin, """
    #!/bin/sh
    if [ "$1" = --version ]; then echo "hotswap-node ${FAKE_VERSION:-0.1.0}"; exit 0; fi
    echo "args: $* in $(pwd)"
    exit ${FAKE_STATUS:-0}
    """)

    File.chmod!(bin, 0o755)
    Application.put_env(:hotswap_node, :path, bin)

    on_exit(fn ->
      Application.delete_env(:hotswap_node, :path)
      System.delete_env("FAKE_STATUS")
      System.delete_env("FAKE_VERSION")
      File.rm_rf!(dir)
    end)

    %{bin: bin}
  end

  test "runs the configured binary with the arguments, in the project's folder" do
    out = capture_io(fn -> assert HotswapNode.run(["deploy", "--verify"]) == 0 end)
    assert out =~ "args: deploy --verify in #{File.cwd!()}"
  end

  test "the binary's exit code is the task's" do
    System.put_env("FAKE_STATUS", "5")

    capture_io(fn ->
      assert catch_exit(Mix.Tasks.HotswapNode.run(["deploy"])) == {:shutdown, 5}
    end)
  end

  test "upload.hotswap compiles, then deploys what was built, its flags passed on" do
    out = capture_io(fn -> Mix.Tasks.Upload.Hotswap.run(["--verify"]) end)
    assert out =~ "args: deploy --no-build --verify"
    out = capture_io(fn -> Mix.Tasks.Upload.Hotswap.run(["--rollback"]) end)
    assert out =~ "args: deploy --rollback"
  end

  test "a binary of another version than configured is warned about" do
    System.put_env("FAKE_VERSION", "0.0.9")

    log = capture_log(fn -> capture_io(fn -> HotswapNode.run(["status"]) end) end)
    assert log =~ "hotswap-node 0.0.9, not the configured"
  end

  test "a configured path that does not exist is named" do
    Application.put_env(:hotswap_node, :path, "/nonexistent/hotswap-node")
    assert_raise Mix.Error, ~r{/nonexistent/hotswap-node}, fn -> HotswapNode.run(["status"]) end
  end

  test "the package installs the crate's version" do
    cargo = File.read!(Path.expand("../../Cargo.toml", __DIR__))
    [_, version] = Regex.run(~r/^version = "([^"]+)"/m, cargo)
    assert Mix.Project.config()[:version] == version
  end
end
