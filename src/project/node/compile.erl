%% Recompiles the project in the warm build node, as IEx's recompile/0
%% does: the compile tasks ran once already, so they are re-enabled, then
%% run again. Mix prints its own diagnostics (file:line) as `mix compile`
%% would. Args are extra arguments for `mix compile`. Answers
%% {ok | noop | error, Count} or {raised, Message}.
Config = 'Elixir.Mix.Project':config(),
Compilers = case lists:keyfind(compilers, 1, Config) of
    {compilers, Cs} when is_list(Cs) -> Cs;
    _ -> 'Elixir.Mix':compilers()
end,
Tasks = [<<"compile">>, <<"compile.all">>, <<"compile.protocols">>]
    ++ [<<"compile.", (atom_to_binary(C, utf8))/binary>> || C <- Compilers],
lists:foreach(fun(T) -> 'Elixir.Mix.Task':reenable(T) end, Tasks),
try 'Elixir.Mix.Task':run(<<"compile">>, [<<"--return-errors">> | Args]) of
    {error, Diagnostics} when is_list(Diagnostics) -> {error, length(Diagnostics)};
    {error, _} -> {error, 1};
    {noop, _} -> {noop, 0};
    _ -> {ok, 0}
catch
    Class:Reason:Stack ->
        {raised, iolist_to_binary('Elixir.Exception':format(Class, Reason, Stack))}
end.
