defmodule HotswapNode.Checksums do
  @moduledoc """
  The SHA-256 of each release archive this package may install, pinned in
  `checksums.exs`: written with the archives (scripts/dist, the release
  workflow) and published with the package, never kept in the source tree,
  whose archives are built from whatever it holds. Without it nothing is
  installed. Nothing whose sum it does not pin is ever installed.
  """

  @file_path Path.expand("../../checksums.exs", __DIR__)
  @external_resource @file_path
  @pinned (if File.exists?(@file_path) do
             @file_path |> Code.eval_file() |> elem(0)
           else
             %{}
           end)

  @doc "The pinned sums: archive file name => lowercase hex SHA-256."
  @spec pinned() :: %{String.t() => String.t()}
  def pinned, do: @pinned

  @doc "The lowercase hex SHA-256 of `data`."
  @spec sha256(binary) :: String.t()
  def sha256(data), do: :crypto.hash(:sha256, data) |> Base.encode16(case: :lower)
end
