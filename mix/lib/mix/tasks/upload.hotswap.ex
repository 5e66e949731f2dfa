defmodule Mix.Tasks.Upload.Hotswap do
  @shortdoc "Compiles, then hot-swaps what changed onto the configured nodes"
  @moduledoc """
  What `mix upload.hotswap` of `mix_tasks_upload_hotswap` did, through
  hotswap-node: compiles the project, then deploys the modules that
  changed to the nodes of its `config :mix_tasks_upload_hotswap` block
  (`nodes`, `cookie`), which hotswap-node reads itself. Flags pass on:

      mix upload.hotswap --verify
      mix upload.hotswap --rollback
  """
  use Mix.Task

  @impl true
  def run(args) do
    {manifest, dirs} = HotswapNode.SameSecond.project()
    Mix.Task.run("compile", HotswapNode.SameSecond.compile_args(manifest, dirs))
    # Built just now; a rollback builds nothing.
    build = if "--rollback" in args, do: [], else: ["--no-build"]

    case HotswapNode.run(["deploy" | build ++ args]) do
      0 -> :ok
      status -> exit({:shutdown, status})
    end
  end
end
