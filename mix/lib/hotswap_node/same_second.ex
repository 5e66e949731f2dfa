defmodule HotswapNode.SameSecond do
  @moduledoc """
  Saves that `mix compile` would not see. Mix tells a changed source by
  its size and its mtime in whole seconds, against the second its last
  compile started (the manifest's mtime): a source saved again at the same
  size in that very second looks compiled, and the node would keep the
  earlier save without a word. That happens to an editor's on-save hook
  that runs `mix upload.hotswap`. Such a compile is forced instead.
  """

  @doc """
  Whether a source under `dirs` was saved in the same second as
  `manifest`, the last compile's: only then can Mix not tell which came
  first. No manifest (nothing compiled yet) means no.
  """
  def ambiguous?(manifest, dirs) do
    case mtime(manifest) do
      nil -> false
      compiled -> Enum.any?(sources(dirs), &(mtime(&1) == compiled))
    end
  end

  @doc "The arguments for `mix compile`: `--force` when a save is ambiguous."
  def compile_args(manifest, dirs) do
    if ambiguous?(manifest, dirs), do: ["--force"], else: []
  end

  @doc "The project's Elixir manifest and source folders (Elixir and Erlang)."
  def project do
    config = Mix.Project.config()
    manifest = Path.join(Mix.Project.manifest_path(config), "compile.elixir")

    dirs =
      List.wrap(config[:elixirc_paths] || ["lib"]) ++ List.wrap(config[:erlc_paths] || ["src"])

    {manifest, dirs}
  end

  defp sources(dirs) do
    Enum.flat_map(dirs, &Path.wildcard(Path.join(&1, "**/*.{ex,erl,hrl}")))
  end

  defp mtime(path) do
    case File.stat(path, time: :posix) do
      {:ok, %File.Stat{mtime: mtime}} -> mtime
      {:error, _} -> nil
    end
  end
end
