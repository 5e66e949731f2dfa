defmodule HotswapNode.MixProject do
  use Mix.Project

  # The hotswap-node release this package installs by default; kept equal
  # to the crate's version by scripts/dist (and a test).
  @version "0.1.0"

  def project do
    [
      app: :hotswap_node,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: false,
      deps: [],
      description:
        "Installs and runs hotswap-node: hot-swaps changed modules onto running BEAM nodes",
      package: [
        licenses: ["MIT", "Apache-2.0"],
        files: ~w(lib checksums.exs mix.exs README.md)
      ]
    ]
  end

  def application do
    [extra_applications: [:logger, :inets, :ssl, :public_key, :crypto]]
  end
end
