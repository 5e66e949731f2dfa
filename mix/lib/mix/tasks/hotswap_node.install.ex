defmodule Mix.Tasks.HotswapNode.Install do
  @shortdoc "Installs hotswap-node for this host"
  @moduledoc """
  Downloads hotswap-node for this host (not for `MIX_TARGET`: the binary
  runs here), checks it against the SHA-256 this package pins, and installs
  it at `_build/hotswap_node-<target>`.

      mix hotswap_node.install [--if-missing]

  `--if-missing` does nothing when it is installed already. With
  `config :hotswap_node, path: …` there is nothing to install.
  """
  use Mix.Task

  @impl true
  def run(args) do
    case OptionParser.parse(args, strict: [if_missing: :boolean]) do
      {opts, [], []} -> install(opts[:if_missing] == true)
      _ -> Mix.raise("usage: mix hotswap_node.install [--if-missing]")
    end
  end

  defp install(if_missing) do
    cond do
      Application.get_env(:hotswap_node, :path) != nil ->
        Mix.shell().info(
          "hotswap-node is configured at #{HotswapNode.bin_path()}; nothing to install"
        )

      if_missing and HotswapNode.installed?() ->
        :ok

      true ->
        HotswapNode.install()
        Mix.shell().info("installed #{HotswapNode.bin_path()}")
    end
  end
end
