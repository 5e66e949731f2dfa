# The baseline for scripts/bench: what `mix upload.hotswap` does after
# compiling, written for this repository. A visible node connects to every
# target, then for two passes, for every module, for every node, makes one
# sequential :rpc.call(node, :code, :load_binary, [mod, path, bin]).
#
#   elixir --sname me --cookie C scripts/baseline_upload.exs EBIN[,EBIN...] NODE...
[ebins | nodes] = System.argv()
nodes = Enum.map(nodes, &String.to_atom/1)

for node <- nodes do
  true = Node.connect(node)
end

beams =
  for ebin <- String.split(ebins, ","), path <- Path.wildcard(Path.join(ebin, "*.beam")) do
    {String.to_atom(Path.basename(path, ".beam")), String.to_charlist(path), File.read!(path)}
  end

{micros, _} =
  :timer.tc(fn ->
    for _pass <- 1..2, {mod, path, bin} <- beams, node <- nodes do
      {:module, ^mod} = :rpc.call(node, :code, :load_binary, [mod, path, bin])
    end
  end)

IO.puts("load_us #{micros}")
