%% The status command's one request (functions: prelude.erl, inspect.erl,
%% migrate.erl): what the node runs of every local module, the processes a
%% deploy would migrate, and the modules of the node's applications that it
%% runs with no local file. Read-only but for inspect's soft purges.
%%
%% Bindings:
%%   Mods = [{Module, Want, []}] as inspect takes them: every local module.
%%   Migrating = [Module]: those whose local build exports code_change.
%%   Apps = [Application]: the project's applications.
%% Value: {States, Callbacks, Extra}:
%%   States as inspect reports them, one per entry of Mods;
%%   Callbacks = [{Module, Pid, Name}]: the processes whose callback module
%%     is one of Migrating that the node runs in another version;
%%   Extra = [Module]: loaded modules of Apps that are not in Mods.
{States, _, _, _} = inspect(Mods, false, false),
Wants = maps:from_list([{M, W} || {M, W, _} <- Mods]),
Changed = [M || {{M, W, _}, S} <- lists:zip(Mods, States), lists:member(M, Migrating),
                S =/= absent, S =/= {loaded, W}, S =/= {on_disk, W}],
Running = running_as_callback(lists:filter(fun erlang:module_loaded/1, Changed)),
AppMods = lists:append([Ms || A <- Apps, {ok, Ms} <- [application:get_key(A, modules)]]),
{States,
 [{M, P, name_of(P)} || {M, Ps} <- maps:to_list(Running), P <- Ps],
 lists:usort([M || M <- AppMods, not is_map_key(M, Wants), erlang:module_loaded(M)])}.
