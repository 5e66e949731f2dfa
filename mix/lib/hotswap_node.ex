defmodule HotswapNode do
  @moduledoc """
  Installs and runs `hotswap-node`, which hot-swaps changed modules onto
  running BEAM nodes.

  The binary for this host is downloaded once, checked against the SHA-256
  pinned in this package, and kept at `_build/hotswap_node-<target>`; the
  download stays in the user cache folder. Configuration, in
  `config/config.exs`:

      config :hotswap_node,
        version: "0.1.0",
        base_url: "https://mirror.example/hotswap-node/$version/hotswap-node-$version-$target.tar.gz",
        path: "/usr/local/bin/hotswap-node"

  `version` defaults to the package's own; `base_url` (with `$version` and
  `$target` in it) to the project's release downloads; with `path`, that
  binary is run and nothing is downloaded.
  """

  require Logger

  @version Mix.Project.config()[:version]
  @base_url "https://github.com/hotswap-node/hotswap-node/releases/download/v$version/hotswap-node-$version-$target.tar.gz"

  @doc "The version to install: configured, else the package's own."
  def configured_version, do: Application.get_env(:hotswap_node, :version, @version)

  @doc "The binary to run: `path` if configured, else the installed one's place."
  def bin_path do
    case Application.get_env(:hotswap_node, :path) do
      nil -> installed_path(target!())
      path -> Path.expand(path)
    end
  end

  @doc "Where the binary for `target` is installed."
  def installed_path(target) do
    Path.join(Path.dirname(Mix.Project.build_path()), "hotswap_node-#{target}")
  end

  @doc """
  Installs the binary for this host: downloaded (or taken from the cache),
  checked, unpacked. Raises with a message that says what to do on any
  failure; nothing is installed then.
  """
  def install do
    target = target!()

    settings = %HotswapNode.Installer{
      version: configured_version(),
      target: target,
      base_url: Application.get_env(:hotswap_node, :base_url, @base_url),
      checksums: HotswapNode.Checksums.pinned(),
      cache: :filename.basedir(:user_cache, ~c"hotswap_node") |> to_string(),
      dest: installed_path(target)
    }

    case HotswapNode.Installer.install(settings) do
      :ok -> :ok
      {:error, message} -> Mix.raise(message)
    end
  end

  @doc "Whether the binary to run is there."
  def installed?, do: File.exists?(bin_path())

  @doc """
  Runs the binary with `args` in the project's folder and environment,
  installing it first if need be; its exit status.
  """
  def run(args) when is_list(args) do
    if Application.get_env(:hotswap_node, :path) == nil and not installed?(), do: install()
    bin = bin_path()

    unless File.exists?(bin),
      do: Mix.raise("`#{bin}` (config :hotswap_node, path:) does not exist")

    warn_if_other_version(bin)
    {_, status} = System.cmd(bin, args, into: IO.stream(:stdio, :line))
    status
  end

  defp warn_if_other_version(bin) do
    want = configured_version()

    case System.cmd(bin, ["--version"], stderr_to_stdout: true) do
      {out, 0} ->
        got = out |> String.trim() |> String.split(" ") |> List.last()

        if got != want,
          do: Logger.warning("#{bin} is hotswap-node #{got}, not the configured #{want}")

      {out, _} ->
        Logger.warning("#{bin} --version failed: #{String.trim(out)}")
    end
  end

  defp target! do
    case HotswapNode.Target.host() do
      {:ok, target} -> target
      {:error, message} -> Mix.raise(message)
    end
  end
end
