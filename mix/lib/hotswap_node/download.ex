defmodule HotswapNode.Download do
  @moduledoc """
  Fetches a URL into memory with OTP's `:httpc`: HTTPS verified against
  the system's CA certificates (`:public_key.cacerts_get/0`) and the host
  name, through `HTTP_PROXY` / `HTTPS_PROXY` (or their lowercase forms)
  when set, `NO_PROXY` honoured.
  """

  @profile :hotswap_node

  @doc "The body of `url`, or `{:error, message}`."
  @spec get(String.t(), (String.t() -> String.t() | nil)) :: {:ok, binary} | {:error, String.t()}
  def get(url, env \\ &System.get_env/1) do
    {:ok, _} = Application.ensure_all_started(:inets)
    {:ok, _} = Application.ensure_all_started(:ssl)
    # A profile of its own, started afresh: no proxy of an earlier call stays.
    restart_profile()
    :ok = :httpc.set_options(proxies(env), @profile)
    uri = URI.parse(url)

    request = {String.to_charlist(url), [{~c"user-agent", ~c"hotswap_node (mix)"}]}

    with {:ok, tls} <- tls(uri) do
      http_options = [ssl: tls, timeout: 120_000, connect_timeout: 30_000]
      request(url, request, http_options)
    end
  end

  defp request(url, request, http_options) do
    case :httpc.request(:get, request, http_options, [body_format: :binary], @profile) do
      {:ok, {{_, 200, _}, _headers, body}} ->
        {:ok, body}

      {:ok, {{_, status, reason}, _headers, _body}} ->
        {:error, "#{url} answered #{status} #{reason}"}

      {:error, reason} ->
        {:error, "cannot download #{url}: #{inspect(reason)}"}
    end
  end

  defp restart_profile do
    _ = :inets.stop(:httpc, @profile)
    {:ok, _} = :inets.start(:httpc, profile: @profile)
    :ok
  end

  @doc false
  # The proxies the environment names, as :httpc options.
  def proxies(env) do
    no_proxy =
      (env.("NO_PROXY") || env.("no_proxy") || "")
      |> String.split(",", trim: true)
      |> Enum.map(&(&1 |> String.trim() |> String.to_charlist()))

    for {key, names} <- [
          proxy: ["HTTP_PROXY", "http_proxy"],
          https_proxy: ["HTTPS_PROXY", "https_proxy"]
        ] do
      {key, names |> Enum.find_value(env) |> proxy_host()}
    end
    |> Enum.filter(fn {_, host} -> host != nil end)
    |> Enum.map(fn {key, host} -> {key, {host, no_proxy}} end)
  end

  defp proxy_host(nil), do: nil
  defp proxy_host(""), do: nil

  defp proxy_host(url) do
    # `host:port` without a scheme is common in these variables.
    url = if String.contains?(url, "://"), do: url, else: "http://" <> url

    case URI.parse(url) do
      %URI{host: host, port: port} when is_binary(host) and host != "" ->
        {String.to_charlist(host), port}

      _ ->
        nil
    end
  end

  defp tls(%URI{scheme: "https", host: host}) do
    if Code.ensure_loaded?(:public_key) and function_exported?(:public_key, :cacerts_get, 0) do
      {:ok,
       [
         verify: :verify_peer,
         cacerts: :public_key.cacerts_get(),
         depth: 4,
         server_name_indication: String.to_charlist(host),
         customize_hostname_check: [match_fun: :public_key.pkix_verify_hostname_match_fun(:https)]
       ]}
    else
      {:error, "downloading over HTTPS needs OTP 25 or later (:public_key.cacerts_get/0)"}
    end
  end

  defp tls(_), do: {:ok, []}
end
