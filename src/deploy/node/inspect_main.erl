%% The inspect step (funs: prelude.erl, load.erl, inspect.erl): the lock,
%% then every module's state. Read-only but for soft purges.
%%
%% Bindings:
%%   Lock = none (a read-back: no lock) | as Take takes it.
%%   Mods = [{Module, Want, Known}], Check, All: as Inspect takes them.
%% Value: {locked, Info} | {ok, Found},
%%   Found = {States, Stuck, Copies}, as Inspect reports them.
Found = fun() ->
    {States, Stuck, Copies, _} = Inspect(Mods, Check, All),
    {States, Stuck, Copies}
end,
case Lock of
    none -> {ok, Found()};
    _ ->
        case Take(Lock, 3) of
            ok -> {ok, Found()};
            Locked -> Locked
        end
end.
