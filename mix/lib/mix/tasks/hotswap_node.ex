defmodule Mix.Tasks.HotswapNode do
  @shortdoc "Runs hotswap-node"
  @moduledoc """
  Runs hotswap-node with the given arguments, in the project's folder and
  environment (installing it first if it is missing); its exit code is the
  task's.

      mix hotswap_node deploy --verify
      mix hotswap_node watch
  """
  use Mix.Task

  @impl true
  def run(args) do
    case HotswapNode.run(args) do
      0 -> :ok
      status -> exit({:shutdown, status})
    end
  end
end
