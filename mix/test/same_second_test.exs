defmodule HotswapNode.SameSecondTest do
  use ExUnit.Case, async: true
  alias HotswapNode.SameSecond

  @moduletag :tmp_dir

  defp at(path, second) do
    File.mkdir_p!(Path.dirname(path))
    unless File.exists?(path), do: File.write!(path, "x")
    File.touch!(path, second)
  end

  test "a source saved in the second of the last compile forces the next", %{tmp_dir: dir} do
    manifest = Path.join(dir, "_build/.mix/compile.elixir")
    at(manifest, 1_700_000_000)
    at(Path.join(dir, "lib/a.ex"), 1_699_999_990)
    at(Path.join(dir, "lib/deep/b.ex"), 1_700_000_000)
    assert SameSecond.compile_args(manifest, [Path.join(dir, "lib")]) == ["--force"]
  end

  test "older and newer saves leave the compile to Mix", %{tmp_dir: dir} do
    manifest = Path.join(dir, "_build/.mix/compile.elixir")
    at(manifest, 1_700_000_000)
    at(Path.join(dir, "lib/a.ex"), 1_699_999_999)
    at(Path.join(dir, "src/b.erl"), 1_700_000_001)
    dirs = [Path.join(dir, "lib"), Path.join(dir, "src")]
    assert SameSecond.compile_args(manifest, dirs) == []
  end

  test "nothing compiled yet: nothing to force", %{tmp_dir: dir} do
    at(Path.join(dir, "lib/a.ex"), 1_700_000_000)
    assert SameSecond.compile_args(Path.join(dir, "none"), [Path.join(dir, "lib")]) == []
  end

  test "an Erlang header counts, other files do not", %{tmp_dir: dir} do
    manifest = Path.join(dir, "m")
    at(manifest, 1_700_000_000)
    at(Path.join(dir, "src/notes.txt"), 1_700_000_000)
    refute SameSecond.ambiguous?(manifest, [Path.join(dir, "src")])
    at(Path.join(dir, "src/r.hrl"), 1_700_000_000)
    assert SameSecond.ambiguous?(manifest, [Path.join(dir, "src")])
  end
end
