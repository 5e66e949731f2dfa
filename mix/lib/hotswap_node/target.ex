defmodule HotswapNode.Target do
  @moduledoc """
  The release target of the machine this runs on: the host's operating
  system and CPU, as the running VM reports them. Never `MIX_TARGET` or
  Nerves' `TARGET_*`: those name the device, and the binary runs here.
  """

  @doc "This host's target, or `{:error, message}` when no archive is built for it."
  @spec host() :: {:ok, String.t()} | {:error, String.t()}
  def host do
    of(:os.type(), :erlang.system_info(:system_architecture))
  end

  @doc """
  The target for an `:os.type/0` value and a system architecture string
  (`:erlang.system_info(:system_architecture)`).
  """
  @spec of({atom, atom}, charlist | String.t()) :: {:ok, String.t()} | {:error, String.t()}
  def of(os_type, architecture) do
    arch = architecture |> to_string() |> String.split("-") |> hd()

    case {os_type, cpu(arch)} do
      {{:unix, :linux}, cpu} when cpu != nil -> {:ok, "#{cpu}-unknown-linux-musl"}
      {{:unix, :darwin}, cpu} when cpu != nil -> {:ok, "#{cpu}-apple-darwin"}
      _ -> {:error, unsupported(os_type, architecture)}
    end
  end

  defp cpu(arch) when arch in ["x86_64", "amd64"], do: "x86_64"
  defp cpu(arch) when arch in ["aarch64", "arm64"], do: "aarch64"
  defp cpu(_), do: nil

  defp unsupported(os_type, architecture) do
    "no prebuilt hotswap-node for this host (#{inspect(os_type)}, #{architecture}); " <>
      "build one with `cargo install --locked hotswap-node` and point the package at it: " <>
      "config :hotswap_node, path: \"/path/to/hotswap-node\""
  end
end
