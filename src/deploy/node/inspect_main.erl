%% The inspect step (funs: prelude.erl, load.erl, inspect.erl): the lock,
%% then every module's state. In a deploy to several nodes whose states
%% the tool believes it knows, it also prepares the changes that belief
%% implies, if the node runs exactly what was believed; the lock's holder
%% keeps them for the apply step (load.erl's Collect). Nothing changes on
%% any node before all of them have answered.
%%
%% Bindings:
%%   Lock     = none (a read-back: no lock) | as Take takes it.
%%   Mods     = [{Module, Want, Known}], Check, All: as Inspect takes them.
%%   Believed = none | [State], one per entry of Mods, as states are reported.
%%   Stage    = none | [{Module, File, Binary}]: what to prepare.
%% Value: {locked, Info} | {ok, Found} | with Stage, {ok, Found, Staged},
%%   Found  = {States, Stuck, Copies}, as Inspect reports them,
%%   Staged = staged | unbelieved | {error, [{Module, Reason}]}.
Found = fun() ->
    {States, Stuck, Copies, _} = Inspect(Mods, Check, All),
    {States, Stuck, Copies}
end,
case Lock of
    none -> {ok, Found()};
    _ ->
        case Take(Lock, 3) of
            ok when Stage =:= none -> {ok, Found()};
            ok ->
                {States, _, _} = Now = Found(),
                Staged = case States =:= Believed of
                    false -> unbelieved;
                    true ->
                        case Prepare(Stage) of
                            {ok, Prepared} ->
                                catch hotswap_deploy_lock ! {stage, element(1, Lock), {ok, Prepared}},
                                staged;
                            Refused -> Refused
                        end
                end,
                {ok, Now, Staged};
            Locked -> Locked
        end
end.
