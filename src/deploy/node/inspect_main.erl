%% The inspect step (functions: prelude.erl, inspect.erl): the lock, then
%% every module's state. Read-only but for soft purges.
%%
%% Bindings:
%%   Lock = none (a read-back: no lock) | as take takes it.
%%   Mods = [{Module, Want, Known}], Check, All: as inspect takes them.
%% Value: {locked, Info} | {ok, Found},
%%   Found = {States, Stuck, Copies}, as inspect reports them.
Taken = case Lock of
    none -> ok;
    _ -> take(Lock, 3)
end,
case Taken of
    ok ->
        {States, Stuck, Copies, _} = inspect(Mods, Check, All),
        {ok, {States, Stuck, Copies}};
    Locked -> Locked
end.
