defmodule HotswapNode.InstallerTest do
  # Archives served by a local HTTP server (OTP's httpd), and a proxy in
  # front of it: real downloads, no network beyond this machine.
  use ExUnit.Case, async: false
  alias HotswapNode.{Checksums, Installer}

  @version "9.8.7"
  @target "x86_64-unknown-linux-musl"

  setup do
    dir = Path.join(System.tmp_dir!(), "hotswap_node_test_#{System.unique_integer([:positive])}")
    served = Path.join(dir, "served")
    File.mkdir_p!(served)
    archive = "hotswap-node-#{@version}-#{@target}.tar.gz"
    data = tar(%{"hotswap-node-#{@version}/hotswap-node" => script("hotswap-node #{@version}")})
    File.write!(Path.join(served, archive), data)

    {:ok, httpd} =
      :inets.start(:httpd,
        port: 0,
        server_name: ~c"hotswap_node_test",
        server_root: String.to_charlist(dir),
        document_root: String.to_charlist(served),
        bind_address: {127, 0, 0, 1}
      )

    port = :httpd.info(httpd)[:port]

    on_exit(fn ->
      :inets.stop(:httpd, httpd)
      File.rm_rf!(dir)
    end)

    settings = %Installer{
      version: @version,
      target: @target,
      base_url: "http://127.0.0.1:#{port}/hotswap-node-$version-$target.tar.gz",
      checksums: %{archive => Checksums.sha256(data)},
      cache: Path.join(dir, "cache"),
      dest: Path.join(dir, "_build/hotswap_node-#{@target}"),
      env: fn _ -> nil end
    }

    %{dir: dir, s: settings, archive: archive, data: data, httpd: httpd}
  end

  test "installs the checked binary, executable, and keeps the download", %{
    s: s,
    archive: archive
  } do
    assert Installer.install(s) == :ok
    assert {"hotswap-node 9.8.7\n", 0} = System.cmd(s.dest, ["--version"])
    assert File.exists?(Path.join(s.cache, archive))
  end

  test "a download whose SHA-256 is not the pinned one installs nothing", %{s: s, data: data} do
    pinned = String.duplicate("0", 64)
    s = %{s | checksums: Map.new(s.checksums, fn {k, _} -> {k, pinned} end)}
    assert {:error, message} = Installer.install(s)
    assert message =~ "hotswap-node-9.8.7-x86_64-unknown-linux-musl.tar.gz"
    assert message =~ pinned
    assert message =~ Checksums.sha256(data)
    refute File.exists?(s.dest)
    refute File.exists?(Path.join(s.cache, Installer.archive(s)))
  end

  test "an archive whose sum is not pinned is not even downloaded", %{s: s} do
    assert {:error, message} = Installer.install(%{s | checksums: %{}})
    assert message =~ "no SHA-256 pinned"
    refute File.exists?(s.dest)
  end

  test "base_url takes $version and $target" do
    s = %Installer{
      version: "1.2.3",
      target: "aarch64-unknown-linux-musl",
      base_url: "https://mirror.example/hs/$version/hotswap-node-$version-$target.tar.gz",
      checksums: %{},
      cache: "",
      dest: ""
    }

    assert Installer.url(s) ==
             "https://mirror.example/hs/1.2.3/hotswap-node-1.2.3-aarch64-unknown-linux-musl.tar.gz"
  end

  test "a cached archive is installed without the network", %{s: s, httpd: httpd} do
    assert Installer.install(s) == :ok
    File.rm!(s.dest)
    :ok = :inets.stop(:httpd, httpd)
    assert Installer.install(s) == :ok
    assert File.exists?(s.dest)
  end

  test "a cached archive that does not match is fetched again", %{s: s, archive: archive} do
    File.mkdir_p!(s.cache)
    File.write!(Path.join(s.cache, archive), "tampered")
    assert Installer.install(s) == :ok
    assert File.read!(Path.join(s.cache, archive)) != "tampered"
  end

  test "HTTP_PROXY is honoured", %{s: s, data: data} do
    {proxy_port, requests} = proxy(data)

    env = fn
      "HTTP_PROXY" -> "http://127.0.0.1:#{proxy_port}"
      _ -> nil
    end

    # A host that does not resolve: only the proxy can answer.
    s = %{s | base_url: "http://archive.invalid/hotswap-node-$version-$target.tar.gz", env: env}
    assert Installer.install(s) == :ok
    assert_received {^requests, "GET http://archive.invalid/hotswap-node-9.8.7-" <> _}
  end

  test "proxies come from the environment, NO_PROXY included" do
    env = fn
      "https_proxy" -> "proxy.corp:3128"
      "NO_PROXY" -> "localhost, .internal"
      _ -> nil
    end

    assert HotswapNode.Download.proxies(env) == [
             https_proxy: {{~c"proxy.corp", 3128}, [~c"localhost", ~c".internal"]}
           ]
  end

  test "an archive without the binary installs nothing", %{s: s, dir: dir} do
    data = tar(%{"README" => "nothing here"})
    File.write!(Path.join([dir, "served", Installer.archive(s)]), data)
    s = %{s | checksums: %{Installer.archive(s) => Checksums.sha256(data)}}
    assert {:error, message} = Installer.install(s)
    assert message =~ "holds no `hotswap-node`"
    refute File.exists?(s.dest)
  end

  # A gzipped tar of `files` (name => content).
  defp tar(files) do
    path = Path.join(System.tmp_dir!(), "hs_#{System.unique_integer([:positive])}.tar.gz")
    entries = for {name, content} <- files, do: {String.to_charlist(name), content}
    :ok = :erl_tar.create(String.to_charlist(path), entries, [:compressed])
    data = File.read!(path)
    File.rm!(path)
    data
  end

  defp script(version_line) do
    "#!/bin/sh\nif [ \"$1\" = --version ]; then echo \"#{version_line}\"; exit 0; fi\nexit 3\n"
  end

  # A one-request HTTP proxy that answers with `data` and tells this test
  # the request line it got.
  defp proxy(data) do
    {:ok, listen} =
      :gen_tcp.listen(0, [:binary, active: false, packet: :line, ip: {127, 0, 0, 1}])

    {:ok, port} = :inet.port(listen)
    test = self()
    tag = make_ref()

    spawn_link(fn ->
      {:ok, socket} = :gen_tcp.accept(listen)
      {:ok, line} = :gen_tcp.recv(socket, 0, 5000)
      send(test, {tag, String.trim_trailing(line)})
      drain_headers(socket)
      head = "HTTP/1.1 200 OK\r\ncontent-length: #{byte_size(data)}\r\nconnection: close\r\n\r\n"
      :ok = :gen_tcp.send(socket, [head, data])
      :gen_tcp.close(socket)
    end)

    {port, tag}
  end

  defp drain_headers(socket) do
    case :gen_tcp.recv(socket, 0, 5000) do
      {:ok, "\r\n"} -> :ok
      {:ok, _} -> drain_headers(socket)
    end
  end
end
