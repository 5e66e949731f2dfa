defmodule HotswapNode.Installer do
  @moduledoc """
  One installation: the archive for a version and target, found in the
  cache or downloaded, checked against its pinned SHA-256 before anything
  is written, and its binary put in place (written beside, then renamed).
  """

  @enforce_keys [:version, :target, :base_url, :checksums, :cache, :dest]
  defstruct @enforce_keys ++ [env: &System.get_env/1]

  @doc "The archive's file name."
  def archive(%__MODULE__{version: version, target: target}),
    do: "hotswap-node-#{version}-#{target}.tar.gz"

  @doc "The URL of the archive: `base_url` with `$version` and `$target` filled in."
  def url(%__MODULE__{base_url: base, version: version, target: target}) do
    base |> String.replace("$version", version) |> String.replace("$target", target)
  end

  @doc "Installs; `:ok`, or `{:error, message}` and nothing installed."
  def install(%__MODULE__{} = s) do
    archive = archive(s)

    with {:ok, want} <- pinned(s, archive),
         {:ok, data} <- fetch(s, archive, want),
         {:ok, binary} <- unpack(data, archive) do
      put(binary, s.dest)
    end
  end

  defp pinned(s, archive) do
    case Map.fetch(s.checksums, archive) do
      {:ok, sum} ->
        {:ok, String.downcase(sum)}

      :error ->
        {:error,
         "no SHA-256 pinned for #{archive} in this package, so it is not installed; " <>
           "use the package's own version, or point `config :hotswap_node, path:` at a binary"}
    end
  end

  # From the cache if it holds the pinned archive, else downloaded, checked,
  # and cached.
  defp fetch(s, archive, want) do
    cached = Path.join(s.cache, archive)

    case File.read(cached) do
      {:ok, data} ->
        if HotswapNode.Checksums.sha256(data) == want,
          do: {:ok, data},
          else: download(s, archive, want, cached)

      {:error, _} ->
        download(s, archive, want, cached)
    end
  end

  defp download(s, archive, want, cached) do
    url = url(s)

    with {:ok, data} <- HotswapNode.Download.get(url, s.env),
         :ok <- check(data, want, archive, url) do
      # The cache is a convenience: a folder that cannot be written is no error.
      with :ok <- File.mkdir_p(s.cache), do: File.write(cached, data)
      {:ok, data}
    end
  end

  defp check(data, want, archive, url) do
    case HotswapNode.Checksums.sha256(data) do
      ^want ->
        :ok

      got ->
        {:error,
         "the SHA-256 of #{archive} (from #{url}) is #{got}, but this package pins #{want}; " <>
           "nothing was installed"}
    end
  end

  defp unpack(data, archive) do
    case :erl_tar.extract({:binary, data}, [:compressed, :memory]) do
      {:ok, files} ->
        case Enum.find(files, fn {name, _} -> Path.basename(to_string(name)) == "hotswap-node" end) do
          {_, binary} -> {:ok, binary}
          nil -> {:error, "#{archive} holds no `hotswap-node`; nothing was installed"}
        end

      {:error, reason} ->
        {:error, "#{archive} cannot be unpacked (#{inspect(reason)}); nothing was installed"}
    end
  end

  defp put(binary, dest) do
    tmp = dest <> ".tmp#{System.unique_integer([:positive])}"

    with :ok <- File.mkdir_p(Path.dirname(dest)),
         :ok <- File.write(tmp, binary),
         :ok <- File.chmod(tmp, 0o755),
         :ok <- File.rename(tmp, dest) do
      :ok
    else
      {:error, reason} ->
        File.rm(tmp)
        {:error, "cannot install #{dest}: #{:file.format_error(reason)}"}
    end
  end
end
