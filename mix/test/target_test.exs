defmodule HotswapNode.TargetTest do
  use ExUnit.Case, async: false
  alias HotswapNode.Target

  test "Linux and macOS hosts on x86_64 and aarch64 have targets" do
    assert Target.of({:unix, :linux}, ~c"x86_64-pc-linux-gnu") ==
             {:ok, "x86_64-unknown-linux-musl"}

    assert Target.of({:unix, :linux}, ~c"aarch64-unknown-linux-gnu") ==
             {:ok, "aarch64-unknown-linux-musl"}

    assert Target.of({:unix, :darwin}, ~c"aarch64-apple-darwin22.4.0") ==
             {:ok, "aarch64-apple-darwin"}

    assert Target.of({:unix, :darwin}, ~c"x86_64-apple-darwin21.6.0") ==
             {:ok, "x86_64-apple-darwin"}
  end

  test "a host without a prebuilt binary is told how to build one" do
    for {os, arch} <- [
          {{:win32, :nt}, ~c"win32"},
          {{:unix, :linux}, ~c"riscv64-unknown-linux-gnu"}
        ] do
      assert {:error, message} = Target.of(os, arch)
      assert message =~ "cargo install"
      assert message =~ "path:"
    end
  end

  test "the host is this machine, whatever MIX_TARGET and Nerves say" do
    {:ok, here} = Target.host()

    try do
      System.put_env("MIX_TARGET", "rpi4")
      System.put_env("TARGET_ARCH", "arm")
      assert Target.host() == {:ok, here}
    after
      System.delete_env("MIX_TARGET")
      System.delete_env("TARGET_ARCH")
    end
  end
end
