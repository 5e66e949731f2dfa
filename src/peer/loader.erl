%% The start of every script (see script.rs): evaluated by the bootstrap
%% (eval.rs) with P, the script's other parts, and B, the call's bindings.
%% P is the names of the script's functions, its main part, then each
%% function. The main part runs with B, and its calls of local functions
%% go to L, which runs the script's function of that name: erl_eval's local
%% function handler, as escripts that are not compiled run theirs. A
%% process parses a function the first time it calls it, and keeps it in
%% its dictionary; a function that does not parse fails the match on
%% {ok, _}, with the parser's message.
[Names, M | Fs] = P,
D = maps:from_list(lists:zip(
    lists:map(fun erlang:binary_to_atom/1, binary:split(Names, list_to_binary(" "), [global, trim_all])),
    Fs)),
L = fun L(N, As) ->
    Cs = case get({hotswap_function, N}) of
        undefined ->
            Text = unicode:characters_to_list(map_get(N, D)),
            {ok, {function, _, N, _, Parsed}} = erl_parse:parse_form(element(2, erl_scan:string(Text))),
            put({hotswap_function, N}, Parsed),
            Parsed;
        Parsed -> Parsed
    end,
    {Body, Bs} = erl_eval:match_clause(Cs, As, #{}, {value, L}),
    element(2, erl_eval:exprs(Body, Bs, {value, L}, none))
end,
Main = element(2, erl_parse:parse_exprs(element(2, erl_scan:string(unicode:characters_to_list(M))))),
element(2, erl_eval:exprs(Main, B, {value, L}, none)).
